/* test_router.c: the router and the --local supervisor against real
 * processes. Starts quorum-meta and three quorumd with local_start in a
 * temporary DATADIR (found next to this program in the build tree, or
 * through QUORUMFS_BINDIR / PATH), then drives tables, items, paged scans
 * across partitions, renames, a restart on the same DATADIR, and the
 * deadline when every node is killed. Every process is stopped by pid,
 * also when a test fails. */
#define _GNU_SOURCE
#include "cluster/clock.h"
#include "fs/local.h"
#include "fs/own_writes.h"
#include "fs/router.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#define TEST_TIMEOUT_MS 10000
#define TEST_SCAN_ITEMS 2000
#define TEST_SCAN_PAGE 37

struct test_cluster {
	char data_dir[PATH_MAX];
	struct local_cluster *local;
	struct router *router;
};

/* The supervisor finds quorum-meta and quorumd in PATH: put the build
 * tree's meta/ and cluster/ (../../ from tests/unit) in front. */
static void test_setup_path(void)
{
	char self[PATH_MAX], *slash, *path = NULL;
	const char *old = getenv("PATH");
	ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (length <= 0)
		return;
	self[length] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return;
	*slash = '\0';
	if (asprintf(&path, "%s/../../meta:%s/../../cluster:%s", self, self,
		     old ? old : "/usr/bin:/bin") < 0)
		return;
	setenv("PATH", path, 1);
	free(path);
}

static int test_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path);
}

static int test_start(struct test_cluster *cluster)
{
	char why[LOCAL_WHY_BYTES];
	struct router_options options = { .timeout_ms = TEST_TIMEOUT_MS };
	int err = local_start(cluster->data_dir, 30000, &cluster->local, why);

	if (err < 0) {
		fprintf(stderr, "local_start: %s\n", why);
		return err;
	}
	options.meta_url = local_meta_url(cluster->local);
	err = router_new(&options, &cluster->router);
	if (err < 0) {
		local_free(cluster->local);
		cluster->local = NULL;
	}
	return err;
}

static int test_group_setup(void **state)
{
	static struct test_cluster cluster;

	test_setup_path();
	snprintf(cluster.data_dir, sizeof(cluster.data_dir), "/tmp/test_router.XXXXXX");
	if (!mkdtemp(cluster.data_dir))
		return -1;
	if (test_start(&cluster) < 0) {
		nftw(cluster.data_dir, test_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
		return -1;
	}
	*state = &cluster;
	return 0;
}

static int test_group_teardown(void **state)
{
	struct test_cluster *cluster = *state;

	router_free(cluster->router);
	local_free(cluster->local);
	nftw(cluster->data_dir, test_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static struct item_attr test_attr(uint32_t mode, int64_t mtime_ns)
{
	struct item_attr attr = { .mode = S_IFREG | mode, .uid = 1000, .gid = 100,
				  .mtime_ns = mtime_ns, .ctime_ns = mtime_ns };
	return attr;
}

static void test_put(struct router *router, const struct router_table *table, const char *key,
		     const char *body)
{
	struct item_attr attr = test_attr(0644, 1000000007);
	assert_int_equal(router_put_item(router, table, key, &attr, body, strlen(body), NULL, 0,
					 ROUTER_COND_NONE, 0, NULL), 0);
}

static void test_make_table(struct router *router, const char *name, struct router_table *table)
{
	assert_int_equal(router_create_table(router, name, 0750, 1000, 100, table), 0);
}

/* ------------------------------------------------------------------ tests */

static void test_datadir_is_locked(void **state)
{
	struct test_cluster *cluster = *state;
	struct local_cluster *second = NULL;
	char why[LOCAL_WHY_BYTES];

	assert_int_equal(local_start(cluster->data_dir, 5000, &second, why), -EBUSY);
	assert_null(second);
	assert_non_null(strstr(why, "in use by another quorumfs (pid "));
}

static void test_tables(void **state)
{
	struct router *router = ((struct test_cluster *)*state)->router;
	struct router_table table, again, *tables = NULL;
	struct router_table_update update = { .set_mode = true, .mode = 0700 };
	struct router_cluster_stats stats;
	char long_name[KEY_NAME_MAX_BYTES + 2];
	size_t count = 0;
	bool found = false;

	test_make_table(router, "tables", &table);
	assert_string_equal(table.name, "tables");
	assert_int_equal(table.mode & 07777, 0750);
	assert_int_equal(table.uid, 1000);
	assert_false(table.has_sort_key);
	assert_int_equal(router_create_table(router, "tables", 0755, 0, 0, &again), -EEXIST);
	assert_int_equal(router_create_table(router, "..", 0755, 0, 0, &again), -EINVAL);
	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(router_create_table(router, long_name, 0755, 0, 0, &again),
			 -ENAMETOOLONG);

	assert_int_equal(router_get_table(router, "tables", &again), 0);
	assert_int_equal(again.id, table.id);
	assert_int_equal(router_get_table(router, "no-such-table", &again), -ENOENT);

	assert_int_equal(router_update_table(router, "tables", &update, &again), 0);
	assert_int_equal(again.mode & 07777, 0700);

	assert_int_equal(router_list_tables(router, &tables, &count), 0);
	for (size_t i = 0; i < count; i++)
		found = found || strcmp(tables[i].name, "tables") == 0;
	free(tables);
	assert_true(found);

	assert_int_equal(router_cluster_stats(router, &stats), 0);
	assert_int_equal(stats.nodes_up, 3);
	assert_true(stats.table_count >= 1);
	assert_true(router_item_max_bytes(router) > 0);

	assert_int_equal(router_delete_table(router, "tables"), 0);
	assert_int_equal(router_get_table(router, "tables", &again), -ENOENT);
	assert_int_equal(router_delete_table(router, "tables"), -ENOENT);
}

static void test_items(void **state)
{
	struct router *router = ((struct test_cluster *)*state)->router;
	struct router_table table;
	struct item_attr attr = test_attr(0640, 1234567890123456789LL), out;
	struct item_xattr xattr = { .name = "user.color", .value = "blue", .value_bytes = 4 };
	struct router_update update = { .set_mode = true, .mode = 0600 };
	struct router_item item;
	char *big;
	size_t big_bytes;

	test_make_table(router, "items", &table);
	assert_int_equal(router_get_item(router, &table, "a", false, &item), -ENOENT);
	assert_int_equal(router_put_item(router, &table, "a", &attr, "hello", 5, &xattr, 1,
					 ROUTER_COND_ABSENT, 0, &out), 0);
	assert_int_equal(out.size, 5);
	assert_int_equal(out.version, 1);
	assert_int_equal(router_put_item(router, &table, "a", &attr, "x", 1, NULL, 0,
					 ROUTER_COND_ABSENT, 0, NULL), -EEXIST);
	assert_int_equal(router_put_item(router, &table, "a", &attr, "x", 1, NULL, 0,
					 ROUTER_COND_VERSION, 7, NULL), -ESTALE);

	assert_int_equal(router_get_item(router, &table, "a", false, &item), 0);
	assert_int_equal(item.body_bytes, 5);
	assert_memory_equal(item.body, "hello", 5);
	assert_int_equal(item.attr.mode, S_IFREG | 0640);
	assert_int_equal(item.attr.mtime_ns, 1234567890123456789LL);
	assert_int_equal(item.xattr_count, 1);
	assert_string_equal(item.xattrs[0].name, "user.color");
	assert_int_equal(item.xattrs[0].value_bytes, 4);
	router_item_free(&item);

	assert_int_equal(router_get_item(router, &table, "a", true, &item), 0);
	assert_null(item.body);
	assert_int_equal(item.attr.size, 5);
	router_item_free(&item);

	/* A put without xattrs keeps the stored ones. */
	assert_int_equal(router_put_item(router, &table, "a", &attr, "hello!", 6, NULL, 0,
					 ROUTER_COND_VERSION, 1, &out), 0);
	assert_int_equal(out.version, 2);
	assert_int_equal(router_get_item(router, &table, "a", true, &item), 0);
	assert_int_equal(item.xattr_count, 1);
	router_item_free(&item);

	assert_int_equal(router_update_item(router, &table, "a", &update, &out), 0);
	assert_int_equal(out.mode, S_IFREG | 0600);
	update = (struct router_update){ .set_xattr = &xattr, .set_xattr_flags = XATTR_CREATE };
	assert_int_equal(router_update_item(router, &table, "a", &update, &out), -EEXIST);
	update = (struct router_update){ .remove_xattr = "user.color" };
	assert_int_equal(router_update_item(router, &table, "a", &update, &out), 0);
	assert_int_equal(router_update_item(router, &table, "a", &update, &out), -ENODATA);
	update = (struct router_update){ .set_size = true, .size = 2 };
	assert_int_equal(router_update_item(router, &table, "a", &update, &out), 0);
	assert_int_equal(out.size, 2);

	/* The limit: one byte over fails, the old item stays. */
	big_bytes = (size_t)router_item_max_bytes(router) + 1;
	big = calloc(1, big_bytes);
	assert_non_null(big);
	assert_int_equal(router_put_item(router, &table, "a", &attr, big, big_bytes, NULL, 0,
					 ROUTER_COND_NONE, 0, NULL), -EFBIG);
	assert_int_equal(router_put_item(router, &table, "big", &attr, big, big_bytes - 1, NULL,
					 0, ROUTER_COND_NONE, 0, NULL), 0);
	free(big);
	assert_int_equal(router_get_item(router, &table, "a", false, &item), 0);
	assert_int_equal(item.body_bytes, 2);
	assert_memory_equal(item.body, "he", 2);
	router_item_free(&item);

	assert_int_equal(router_get_item(router, &table, "a/b", false, &item), -EINVAL);
	assert_int_equal(router_delete_item(router, &table, "a"), 0);
	assert_int_equal(router_delete_item(router, &table, "a"), -ENOENT);
	assert_int_equal(router_delete_item(router, &table, "big"), 0);
	assert_int_equal(router_delete_table(router, "items"), 0);
}

static int test_key_index(const char *key)
{
	int index;

	if (sscanf(key, "key-%d", &index) != 1 || index < 0 || index >= TEST_SCAN_ITEMS)
		return -1;
	return index;
}

static void test_scan_across_partitions(void **state)
{
	struct router *router = ((struct test_cluster *)*state)->router;
	struct router_table table;
	struct router_scan_entry entries[TEST_SCAN_PAGE];
	struct router_cursor cursor, resume;
	static int seen[TEST_SCAN_ITEMS];
	char key[32];
	size_t count, total = 0, pages = 0;
	bool has_items, resume_set = false;
	uint64_t last_hash = 0;

	test_make_table(router, "scan", &table);
	assert_int_equal(router_table_has_items(router, &table, &has_items), 0);
	assert_false(has_items);
	router_cursor_start(&cursor);
	assert_int_equal(router_scan(router, &table, &cursor, entries, TEST_SCAN_PAGE, &count), 0);
	assert_int_equal(count, 0);
	assert_true(cursor.done);

	for (int i = 0; i < TEST_SCAN_ITEMS; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		test_put(router, &table, key, key);
	}
	assert_int_equal(router_table_has_items(router, &table, &has_items), 0);
	assert_true(has_items);

	router_cursor_start(&cursor);
	memset(seen, 0, sizeof(seen));
	while (!cursor.done) {
		assert_int_equal(router_scan(router, &table, &cursor, entries, TEST_SCAN_PAGE,
					     &count), 0);
		assert_true(count <= TEST_SCAN_PAGE);
		/* Full pages until the end: pages fill across partitions. */
		if (!cursor.done)
			assert_int_equal(count, TEST_SCAN_PAGE);
		for (size_t i = 0; i < count; i++) {
			int index = test_key_index(entries[i].key);

			assert_true(index >= 0);
			seen[index]++;
			assert_true(entries[i].next.hash >= last_hash);
			last_hash = entries[i].next.hash;
			assert_int_equal(entries[i].attr.size, strlen(entries[i].key));
			if (total + i == TEST_SCAN_ITEMS / 2) {
				resume = entries[i].next;
				resume_set = true;
			}
		}
		total += count;
		pages++;
	}
	assert_int_equal(total, TEST_SCAN_ITEMS);
	for (int i = 0; i < TEST_SCAN_ITEMS; i++)
		assert_int_equal(seen[i], 1);

	/* An entry's cursor resumes right after it, even after deletes. */
	assert_true(resume_set);
	snprintf(key, sizeof(key), "key-%d", 0);
	total = 0;
	while (!resume.done) {
		assert_int_equal(router_scan(router, &table, &resume, entries, TEST_SCAN_PAGE,
					     &count), 0);
		total += count;
	}
	assert_int_equal(total, TEST_SCAN_ITEMS - TEST_SCAN_ITEMS / 2 - 1);

	assert_int_equal(router_delete_table(router, "scan"), -ENOTEMPTY);
	for (int i = 0; i < TEST_SCAN_ITEMS; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		assert_int_equal(router_delete_item(router, &table, key), 0);
	}
	assert_int_equal(router_delete_table(router, "scan"), 0);
}

static void test_rename(void **state)
{
	struct router *router = ((struct test_cluster *)*state)->router;
	struct router_table table;
	struct router_item item;
	struct item_xattr xattr = { .name = "user.k", .value = "v", .value_bytes = 1 };
	struct item_attr attr = test_attr(0600, 42);

	test_make_table(router, "rename", &table);
	assert_int_equal(router_put_item(router, &table, "from", &attr, "body", 4, &xattr, 1,
					 ROUTER_COND_NONE, 0, NULL), 0);
	test_put(router, &table, "taken", "other");
	test_put(router, &table, "stale", "x");

	assert_int_equal(router_rename_item(router, &table, "from", "from", false), 0);
	assert_int_equal(router_rename_item(router, &table, "from", "taken", true), -EEXIST);
	assert_int_equal(router_rename_item(router, &table, "from", "to", true), 0);
	assert_int_equal(router_get_item(router, &table, "from", true, &item), -ENOENT);
	assert_int_equal(router_get_item(router, &table, "to", false, &item), 0);
	assert_int_equal(item.body_bytes, 4);
	assert_memory_equal(item.body, "body", 4);
	assert_int_equal(item.attr.mode, S_IFREG | 0600);
	assert_int_equal(item.attr.mtime_ns, 42);
	assert_int_equal(item.xattr_count, 1);
	router_item_free(&item);

	/* Replacing: the target's old xattrs and body are gone. */
	assert_int_equal(router_rename_item(router, &table, "stale", "to", false), 0);
	assert_int_equal(router_get_item(router, &table, "to", false, &item), 0);
	assert_int_equal(item.body_bytes, 1);
	assert_int_equal(item.xattr_count, 0);
	router_item_free(&item);
	assert_int_equal(router_rename_item(router, &table, "missing", "x", false), -ENOENT);
}

/* Items survive a stop and a start on the same DATADIR, at the same ports. */
static void test_restart(void **state)
{
	struct test_cluster *cluster = *state;
	struct router_table table;
	struct router_item item;
	char meta_url[64];

	assert_int_equal(router_get_table(cluster->router, "rename", &table), 0);
	snprintf(meta_url, sizeof(meta_url), "%s", local_meta_url(cluster->local));
	router_free(cluster->router);
	cluster->router = NULL;
	local_stop(cluster->local);
	local_stop(cluster->local);          /* twice is harmless */
	local_free(cluster->local);
	cluster->local = NULL;

	assert_int_equal(test_start(cluster), 0);
	assert_string_equal(local_meta_url(cluster->local), meta_url);
	assert_int_equal(router_get_item(cluster->router, &table, "to", false, &item), 0);
	assert_int_equal(item.body_bytes, 1);
	router_item_free(&item);
}

/* The pids of the three nodes, from cluster.json. */
static void test_node_pids(const struct test_cluster *cluster, pid_t pids[3])
{
	char path[PATH_MAX + 32];
	json_t *root, *node;
	size_t index;

	snprintf(path, sizeof(path), "%s/cluster.json", local_data_dir(cluster->local));
	root = json_load_file(path, 0, NULL);
	assert_non_null(root);
	assert_int_equal(json_integer_value(json_object_get(root, "quorumfs_pid")), getpid());
	assert_int_equal(json_integer_value(json_object_get(root, "version")), 1);
	assert_int_equal(json_array_size(json_object_get(root, "nodes")), 3);
	json_array_foreach(json_object_get(root, "nodes"), index, node) {
		pids[index] = (pid_t)json_integer_value(json_object_get(node, "pid"));
		assert_true(pids[index] > 0);
	}
	json_decref(root);
}

struct test_resume {
	pid_t pids[3];
	int64_t delay_ms;
};

static void *test_resume_later(void *arg)
{
	struct test_resume *resume = arg;

	clock_sleep_ms(resume->delay_ms);
	for (int i = 0; i < 3; i++)
		kill(resume->pids[i], SIGCONT);
	return NULL;
}

/* Nodes that stop answering for a while (SIGSTOP): the first attempt times
 * out, the retry succeeds within the deadline. A delete whose first try
 * may have been applied reports success. */
static void test_stalled_nodes_are_retried(void **state)
{
	struct test_cluster *cluster = *state;
	struct router *router = cluster->router;
	struct test_resume resume = { .delay_ms = 2500 };
	struct router_table table;
	struct router_item item;
	pthread_t thread;
	int put_err, delete_err, get_err;

	test_make_table(router, "stall", &table);
	test_put(router, &table, "victim", "v");
	test_put(router, &table, "other", "o");
	test_node_pids(cluster, resume.pids);
	for (int i = 0; i < 3; i++)
		assert_int_equal(kill(resume.pids[i], SIGSTOP), 0);
	assert_int_equal(pthread_create(&thread, NULL, test_resume_later, &resume), 0);
	delete_err = router_delete_item(router, &table, "victim");
	get_err = router_get_item(router, &table, "other", false, &item);
	pthread_join(thread, NULL);
	assert_int_equal(delete_err, 0);
	assert_int_equal(get_err, 0);
	router_item_free(&item);

	/* Again with a put, then check what the store holds. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(kill(resume.pids[i], SIGSTOP), 0);
	assert_int_equal(pthread_create(&thread, NULL, test_resume_later, &resume), 0);
	{
		struct item_attr attr = test_attr(0644, 5);
		put_err = router_put_item(router, &table, "other", &attr, "new", 3, NULL, 0,
					  ROUTER_COND_NONE, 0, NULL);
	}
	pthread_join(thread, NULL);
	assert_int_equal(put_err, 0);
	assert_int_equal(router_get_item(router, &table, "victim", true, &item), -ENOENT);
	assert_int_equal(router_get_item(router, &table, "other", false, &item), 0);
	assert_int_equal(item.body_bytes, 3);
	router_item_free(&item);
}

struct test_worker {
	struct router *router;
	struct router_table table;
	int id;
	int failures;
};

static void *test_worker_run(void *arg)
{
	struct test_worker *worker = arg;
	struct item_attr attr = test_attr(0644, 9);

	for (int i = 0; i < 100; i++) {
		char key[32], body[32];
		struct router_item item;

		snprintf(key, sizeof(key), "w%d-%d", worker->id, i);
		snprintf(body, sizeof(body), "body %d %d", worker->id, i);
		if (router_put_item(worker->router, &worker->table, key, &attr, body, strlen(body),
				    NULL, 0, ROUTER_COND_NONE, 0, NULL) != 0) {
			worker->failures++;
			continue;
		}
		if (router_get_item(worker->router, &worker->table, key, false, &item) != 0) {
			worker->failures++;
			continue;
		}
		if (item.body_bytes != strlen(body) || memcmp(item.body, body, item.body_bytes))
			worker->failures++;
		router_item_free(&item);
	}
	return NULL;
}

/* Many threads share one router (and its route cache and sockets). */
static void test_threads_share_router(void **state)
{
	struct test_cluster *cluster = *state;
	struct test_worker workers[8];
	pthread_t threads[8];
	struct router_table table;
	struct router_scan_entry entries[100];
	struct router_cursor cursor;
	size_t count, total = 0;

	test_make_table(cluster->router, "threads", &table);
	for (int i = 0; i < 8; i++) {
		workers[i] = (struct test_worker){ .router = cluster->router, .table = table,
						   .id = i };
		assert_int_equal(pthread_create(&threads[i], NULL, test_worker_run, &workers[i]),
				 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(threads[i], NULL);
		assert_int_equal(workers[i].failures, 0);
	}
	router_cursor_start(&cursor);
	while (!cursor.done) {
		assert_int_equal(router_scan(cluster->router, &table, &cursor, entries, 100,
					     &count), 0);
		total += count;
	}
	assert_int_equal(total, 800);
}

static void test_dead_nodes_give_eio(void **state)
{
	struct test_cluster *cluster = *state;
	struct router_options options = { .timeout_ms = 1500,
					  .meta_url = local_meta_url(cluster->local) };
	struct router *router;
	struct router_table table;
	struct router_item item;
	pid_t pids[3];
	int64_t start_ms, elapsed_ms;

	assert_int_equal(router_new(&options, &router), 0);
	assert_int_equal(router_get_table(router, "rename", &table), 0);
	assert_int_equal(router_get_item(router, &table, "to", true, &item), 0);
	router_item_free(&item);

	test_node_pids(cluster, pids);
	/* Our own children, by pid; local_stop reaps them. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(kill(pids[i], SIGKILL), 0);

	start_ms = clock_monotonic_ms();
	assert_int_equal(router_get_item(router, &table, "to", true, &item), -EIO);
	elapsed_ms = clock_monotonic_ms() - start_ms;
	/* Not before the deadline; never a hang. */
	assert_true(elapsed_ms >= 1400);
	assert_true(elapsed_ms < 10000);
	/* Meta still answers. */
	assert_int_equal(router_get_table(router, "rename", &table), 0);
	router_free(router);
}

/* A key written a moment ago is recent for a while, then not; another key never was, in
 * another table neither (a false positive is allowed by the contract, not for these). */
static void test_own_writes(void **state)
{
	struct own_writes *w = own_writes_new();

	(void)state;
	assert_non_null(w);
	assert_false(own_writes_recent(w, 1, 42, 1000));
	own_writes_note(w, 1, 42, 1000);
	assert_true(own_writes_recent(w, 1, 42, 1000));
	assert_true(own_writes_recent(w, 1, 42, 1000 + OWN_WRITES_RECENT_MS - 1));
	assert_false(own_writes_recent(w, 1, 42, 1000 + OWN_WRITES_RECENT_MS));
	assert_false(own_writes_recent(w, 1, 43, 1000));
	assert_false(own_writes_recent(w, 2, 42, 1000));
	own_writes_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_own_writes),
		cmocka_unit_test(test_datadir_is_locked),
		cmocka_unit_test(test_tables),
		cmocka_unit_test(test_items),
		cmocka_unit_test(test_scan_across_partitions),
		cmocka_unit_test(test_rename),
		cmocka_unit_test(test_restart),
		cmocka_unit_test(test_threads_share_router),
		cmocka_unit_test(test_stalled_nodes_are_retried),
		cmocka_unit_test(test_dead_nodes_give_eio),
	};

	return cmocka_run_group_tests(tests, test_group_setup, test_group_teardown);
}
