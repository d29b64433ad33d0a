/* test_load.c: the load figures of a storage node: the space-saving
 * summary on a skewed stream (the hot keys come out on top, counts bound
 * the truth from above within their error), merging two windows, rates
 * over the sliding window with a controlled clock, tracking of groups
 * (counters kept across a re-track, a request outside every range not
 * counted), the heartbeat report, and the census of items and bytes over a
 * real store. */
#define _GNU_SOURCE   /* nftw */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cluster/census.h"
#include "cluster/keys.h"
#include "cluster/load.h"
#include "cluster/store.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TEST_HALF (UINT64_MAX / 2)

/* A deterministic generator (xorshift64*), so a failure replays. */
static uint64_t test_random(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 2685821657736338717ull;
}

static void test_key(char *out, size_t out_bytes, unsigned n)
{
	snprintf(out, out_bytes, "key-%u", n);
}

static void test_add(struct load_summary *summary, const char *key, uint64_t weight)
{
	load_summary_add(summary, key_hash(key, strlen(key)), key, strlen(key), weight);
}

/* ----------------------------------------------------------------- summary */

static void test_summary_skewed(void **state)
{
	struct load_summary summary;
	struct load_hot_key top[LOAD_HOT_KEYS_REPORTED];
	uint64_t seed = 42, truth_hot = 0, truth_warm = 0;
	const uint64_t total = 100000;
	size_t n;

	(void)state;
	load_summary_clear(&summary);
	for (uint64_t i = 0; i < total; i++) {
		uint64_t r = test_random(&seed) % 100;
		char key[32];

		if (r < 20) {
			test_add(&summary, "hot", 1);
			truth_hot++;
		} else if (r < 30) {
			test_add(&summary, "warm", 1);
			truth_warm++;
		} else {
			test_key(key, sizeof(key), (unsigned)(test_random(&seed) % 2000));
			test_add(&summary, key, 1);
		}
	}
	assert_int_equal(summary.total, total);
	assert_int_equal(summary.used, LOAD_SUMMARY_SLOTS);
	n = load_summary_top(&summary, NULL, top, LOAD_HOT_KEYS_REPORTED);
	assert_int_equal(n, LOAD_HOT_KEYS_REPORTED);
	/* Above total / slots, a key is guaranteed in, and counts bound the truth. */
	assert_int_equal(top[0].sample_bytes, 3);
	assert_memory_equal(top[0].sample, "hot", 3);
	assert_int_equal(top[0].hash, key_hash("hot", 3));
	assert_true(top[0].count >= truth_hot);
	assert_true(top[0].count - top[0].error <= truth_hot);
	assert_true(top[0].error <= total / LOAD_SUMMARY_SLOTS);
	assert_memory_equal(top[1].sample, "warm", 4);
	assert_true(top[1].count >= truth_warm);
	assert_true(top[1].count - top[1].error <= truth_warm);
	/* Ordered by count. */
	for (size_t i = 1; i < n; i++)
		assert_true(top[i - 1].count >= top[i].count);
}

static void test_summary_exact_when_small(void **state)
{
	struct load_summary summary;
	struct load_hot_key top[LOAD_HOT_KEYS_REPORTED];
	char long_key[200];

	(void)state;
	load_summary_clear(&summary);
	memset(long_key, 'z', sizeof(long_key));
	for (int i = 0; i < 5; i++)
		test_add(&summary, "a", 1);
	test_add(&summary, "b", 3);
	load_summary_add(&summary, key_hash(long_key, sizeof(long_key)), long_key,
			 sizeof(long_key), 4);
	assert_int_equal(load_summary_top(&summary, NULL, top, 4), 3);
	assert_int_equal(top[0].count, 5);
	assert_int_equal(top[0].error, 0);
	/* A long key keeps a bounded sample and its full length. */
	assert_int_equal(top[1].count, 4);
	assert_int_equal(top[1].key_bytes, sizeof(long_key));
	assert_int_equal(top[1].sample_bytes, LOAD_KEY_SAMPLE_BYTES);
	assert_int_equal(top[2].count, 3);
	assert_memory_equal(top[2].sample, "b", 1);
}

static void test_summary_merge(void **state)
{
	struct load_summary current, previous;
	struct load_hot_key top[LOAD_HOT_KEYS_REPORTED];

	(void)state;
	load_summary_clear(&current);
	load_summary_clear(&previous);
	test_add(&previous, "x", 10);
	test_add(&previous, "y", 8);
	test_add(&current, "y", 5);
	test_add(&current, "z", 2);
	assert_int_equal(load_summary_top(&current, &previous, top, 4), 3);
	assert_memory_equal(top[0].sample, "y", 1);
	assert_int_equal(top[0].count, 13);
	assert_memory_equal(top[1].sample, "x", 1);
	assert_int_equal(top[1].count, 10);
	assert_int_equal(top[2].count, 2);
	/* Fewer asked than known. */
	assert_int_equal(load_summary_top(&current, &previous, top, 1), 1);
	assert_int_equal(top[0].count, 13);
}

/* ------------------------------------------------------------------ groups */

static void test_track_two_halves(struct load *load, int64_t now_ms)
{
	const struct load_range ranges[] = {
		{ .table_id = 1, .partition_id = 11, .hash_first = 0, .hash_last = TEST_HALF },
		{ .table_id = 1, .partition_id = 12, .hash_first = TEST_HALF + 1,
		  .hash_last = UINT64_MAX },
		{ .table_id = 3, .partition_id = 31, .hash_first = 0, .hash_last = UINT64_MAX },
	};

	assert_int_equal(load_track(load, ranges, 3, now_ms), 0);
}

static void test_rates(void **state)
{
	struct load *load;
	struct load_figures figures;

	(void)state;
	assert_int_equal(load_new(&load), 0);
	test_track_two_halves(load, 0);
	for (int i = 0; i < 50; i++)
		load_count(load, 1, 5, LOAD_WRITE, "k", 1, 100 + i);
	for (int i = 0; i < 30; i++)
		load_count(load, 1, 7, LOAD_READ, NULL, 0, 2500);
	/* Other partition, other table, an untracked table: not counted here. */
	load_count(load, 1, TEST_HALF + 9, LOAD_WRITE, "q", 1, 2500);
	load_count(load, 3, 9, LOAD_READ, "q", 1, 2500);
	load_count(load, 2, 9, LOAD_READ, "q", 1, 2500);

	assert_int_equal(load_figures(load, 1, 11, 2900, &figures), 0);
	/* Seconds 0, 1 and 2 since it was tracked. */
	assert_true(fabs(figures.write_ops_per_s - 50.0 / 3) < 1e-9);
	assert_true(fabs(figures.read_ops_per_s - 30.0 / 3) < 1e-9);
	assert_int_equal(figures.writes_total, 50);
	assert_int_equal(figures.reads_total, 30);
	assert_false(figures.has_census);
	assert_int_equal(figures.hot_count, 1);
	assert_int_equal(figures.hot[0].count, 50);

	assert_int_equal(load_figures(load, 1, 12, 2900, &figures), 0);
	assert_int_equal(figures.writes_total, 1);
	assert_int_equal(load_figures(load, 3, 31, 2900, &figures), 0);
	assert_int_equal(figures.reads_total, 1);
	assert_int_equal(load_figures(load, 2, 1, 2900, &figures), -ENOENT);

	/* Second 0 left the window; second 2 is still in, over the whole window. */
	assert_int_equal(load_figures(load, 1, 11, 11500, &figures), 0);
	assert_true(fabs(figures.write_ops_per_s) < 1e-9);
	assert_true(fabs(figures.read_ops_per_s - 30.0 / LOAD_WINDOW_S) < 1e-9);
	/* Hot keys of the window before stay one more window... */
	assert_int_equal(figures.hot_count, 1);
	assert_int_equal(load_figures(load, 1, 11, 13000, &figures), 0);
	assert_true(fabs(figures.read_ops_per_s) < 1e-9);
	assert_int_equal(figures.writes_total, 50);
	/* ...and are forgotten after it. */
	assert_int_equal(load_figures(load, 1, 11, 25000, &figures), 0);
	assert_int_equal(figures.hot_count, 0);

	/* A slot of a second long gone is reset, not added to. */
	load_count(load, 1, 5, LOAD_WRITE, NULL, 0, 30000);
	assert_int_equal(load_figures(load, 1, 11, 30000, &figures), 0);
	assert_true(fabs(figures.write_ops_per_s - 1.0 / LOAD_WINDOW_S) < 1e-9);
	load_free(load);
}

static void test_retrack(void **state)
{
	const struct load_range split[] = {
		/* Partition 11 narrowed by a split; 13 is its new sibling; 12 is gone. */
		{ .table_id = 1, .partition_id = 13, .hash_first = TEST_HALF / 2 + 1,
		  .hash_last = TEST_HALF },
		{ .table_id = 1, .partition_id = 11, .hash_first = 0, .hash_last = TEST_HALF / 2 },
	};
	struct load_figures figures;
	struct load_range *ranges;
	struct load *load;
	size_t count;

	(void)state;
	assert_int_equal(load_new(&load), 0);
	test_track_two_halves(load, 0);
	load_count(load, 1, 5, LOAD_WRITE, "k", 1, 100);
	load_count(load, 1, TEST_HALF + 5, LOAD_WRITE, "k", 1, 100);
	assert_int_equal(load_set_census(load, 1, 11, 3, 300, 100), 0);
	assert_int_equal(load_set_census(load, 9, 9, 3, 300, 100), -ENOENT);

	assert_int_equal(load_track(load, split, 2, 1000), 0);
	assert_int_equal(load_groups(load, &ranges, &count), 0);
	assert_int_equal(count, 2);
	/* In (table, hash) order. */
	assert_int_equal(ranges[0].partition_id, 11);
	assert_int_equal(ranges[0].hash_last, TEST_HALF / 2);
	assert_int_equal(ranges[1].partition_id, 13);
	free(ranges);
	assert_int_equal(load_figures(load, 1, 11, 1000, &figures), 0);
	assert_int_equal(figures.writes_total, 1);
	/* Its census counted the wider range: unknown until the next pass, so meta does
	 * not split it again on its old size. */
	assert_false(figures.has_census);
	assert_int_equal(load_figures(load, 1, 12, 1000, &figures), -ENOENT);
	assert_int_equal(load_figures(load, 1, 13, 1000, &figures), 0);
	assert_int_equal(figures.writes_total, 0);
	/* The hash now belongs to 13, and one past every range to nobody. */
	load_count(load, 1, TEST_HALF, LOAD_READ, NULL, 0, 1100);
	load_count(load, 1, TEST_HALF + 1, LOAD_READ, NULL, 0, 1100);
	assert_int_equal(load_figures(load, 1, 13, 1100, &figures), 0);
	assert_int_equal(figures.reads_total, 1);

	assert_int_equal(load_track(load, NULL, 0, 2000), 0);
	assert_int_equal(load_groups(load, &ranges, &count), 0);
	assert_int_equal(count, 0);
	assert_null(ranges);
	load_count(load, 1, 5, LOAD_READ, "k", 1, 2000);
	load_free(load);
}

static void test_fill_report(void **state)
{
	Quorum__GroupReport report = QUORUM__GROUP_REPORT__INIT;
	struct arena *arena = arena_new();
	struct load *load;
	uint8_t packed[1024];
	Quorum__GroupReport *decoded;

	(void)state;
	assert_non_null(arena);
	assert_int_equal(load_new(&load), 0);
	test_track_two_halves(load, 0);
	report.table_id = 1;
	report.partition_id = 11;
	load_count(load, 1, key_hash("hot", 3), LOAD_WRITE, "hot", 3, 500);
	assert_int_equal(load_fill_report(load, &report, 900, arena), 0);
	/* No census yet: no size and no count, rather than a made-up zero. */
	assert_false(report.has_item_count);
	assert_false(report.has_size_bytes);
	assert_true(report.has_write_ops_per_s);
	assert_true(report.write_ops_per_s == 1.0);
	assert_int_equal(report.n_hot_keys, 1);
	assert_int_equal(load_set_census(load, 1, 11, 12, 3456, 950), 0);
	assert_int_equal(load_fill_report(load, &report, 1000, arena), 0);
	assert_true(report.has_item_count);
	assert_int_equal(report.item_count, 12);
	assert_int_equal(report.size_bytes, 3456);
	assert_true(quorum__group_report__get_packed_size(&report) <= sizeof(packed));
	decoded = quorum__group_report__unpack(NULL, quorum__group_report__pack(&report, packed),
					       packed);
	assert_non_null(decoded);
	assert_int_equal(decoded->n_hot_keys, 1);
	assert_int_equal(decoded->hot_keys[0]->key.len, 3);
	assert_memory_equal(decoded->hot_keys[0]->key.data, "hot", 3);
	assert_int_equal(decoded->hot_keys[0]->count, 1);
	quorum__group_report__free_unpacked(decoded, NULL);

	report.partition_id = 99;
	assert_int_equal(load_fill_report(load, &report, 1000, arena), -ENOENT);
	load_free(load);
	arena_free(arena);
}

/* ------------------------------------------------------------------ census */

static int test_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void test_put(struct store *store, uint64_t table_id, const char *key, size_t body_bytes)
{
	Quorum__PutItemRequest put = QUORUM__PUT_ITEM_REQUEST__INIT;
	Quorum__ItemKey item_key = QUORUM__ITEM_KEY__INIT;
	Quorum__ItemMeta meta = QUORUM__ITEM_META__INIT;
	static uint8_t body[4096];
	struct arena *arena = arena_new();

	assert_non_null(arena);
	item_key.table_id = table_id;
	item_key.partition_key.data = (uint8_t *)key;
	item_key.partition_key.len = strlen(key);
	meta.mode = 0100644;
	put.key = &item_key;
	put.meta = &meta;
	put.has_body = true;
	put.body.data = body;
	put.body.len = body_bytes;
	assert_int_equal(store_put(store, &put, arena, NULL), 0);
	arena_free(arena);
}

static void test_census(void **state)
{
	uint64_t items[2] = { 0, 0 }, bytes[2] = { 0, 0 };
	struct load_figures figures;
	struct census *census;
	struct store *store;
	struct load *load;
	char dir[64], key[32];

	(void)state;
	strcpy(dir, "/tmp/test_load.XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(store_open(dir, &store), 0);
	for (unsigned i = 0; i < 2500; i++) {
		size_t body_bytes = i % 100;
		int half;

		test_key(key, sizeof(key), i);
		half = key_hash(key, strlen(key)) > TEST_HALF;
		test_put(store, 1, key, body_bytes);
		items[half]++;
		bytes[half] += strlen(key) + body_bytes;
		/* Another table's items are none of these partitions' business. */
		if (i % 10 == 0)
			test_put(store, 2, key, 7);
	}
	assert_int_equal(load_new(&load), 0);
	test_track_two_halves(load, 0);
	assert_int_equal(census_new(store, &census), 0);

	/* A small budget: the passes take several steps; each finds the truth. */
	for (int step = 0; step < 20; step++)
		assert_int_equal(census_step(census, load, 300, 1000 + step), 0);
	assert_int_equal(load_figures(load, 1, 11, 2000, &figures), 0);
	assert_true(figures.has_census);
	assert_int_equal(figures.item_count, items[0]);
	assert_int_equal(figures.size_bytes, bytes[0]);
	assert_int_equal(load_figures(load, 1, 12, 2000, &figures), 0);
	assert_true(figures.has_census);
	assert_int_equal(figures.item_count, items[1]);
	assert_int_equal(figures.size_bytes, bytes[1]);
	/* An empty partition has a census too: zero, not unknown. */
	assert_int_equal(load_figures(load, 3, 31, 2000, &figures), 0);
	assert_true(figures.has_census);
	assert_int_equal(figures.item_count, 0);

	/* New items show after the next passes. */
	test_put(store, 3, "fresh", 100);
	for (int step = 0; step < 20; step++)
		assert_int_equal(census_step(census, load, 300, 3000 + step), 0);
	assert_int_equal(load_figures(load, 3, 31, 4000, &figures), 0);
	assert_int_equal(figures.item_count, 1);
	assert_int_equal(figures.size_bytes, 5 + 100);
	assert_true(figures.census_ms >= 3000);

	census_free(census);
	load_free(load);
	store_close(store);
	nftw(dir, test_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_summary_skewed),
		cmocka_unit_test(test_summary_exact_when_small),
		cmocka_unit_test(test_summary_merge),
		cmocka_unit_test(test_rates),
		cmocka_unit_test(test_retrack),
		cmocka_unit_test(test_fill_report),
		cmocka_unit_test(test_census),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
