/* test_settings.c: the cluster settings of meta/settings.h: parsing of
 * values with units and their ranges (and the error text a user reads),
 * unknown keys, set / get / describe, "default", and persistence in the
 * catalog's LevelDB across a close and reopen, with defaults that change
 * between runs (as meta's flags may). */
#define _GNU_SOURCE   /* nftw */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "meta/catalog.h"
#include "meta/settings.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <leveldb/c.h>

struct test_state {
	char dir[64];
	struct catalog *catalog;
	struct settings *settings;
	uint64_t defaults[SETTING_COUNT];
};

static int test_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static int test_open(struct test_state *test)
{
	if (catalog_open(test->dir, 5000, &test->catalog) < 0)
		return -1;
	return settings_open(catalog_leveldb(test->catalog), test->defaults, &test->settings);
}

static void test_close(struct test_state *test)
{
	settings_close(test->settings);
	catalog_close(test->catalog);
	test->settings = NULL;
	test->catalog = NULL;
}

static int test_setup(void **state)
{
	struct test_state *test = calloc(1, sizeof(*test));

	if (!test)
		return -1;
	strcpy(test->dir, "/tmp/test_settings.XXXXXX");
	if (!mkdtemp(test->dir))
		return -1;
	settings_default_values(test->defaults);
	if (test_open(test) < 0)
		return -1;
	*state = test;
	return 0;
}

static int test_teardown(void **state)
{
	struct test_state *test = *state;

	test_close(test);
	nftw(test->dir, test_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(test);
	return 0;
}

static uint64_t test_parse_ok(enum setting_id id, const char *text)
{
	char why[SETTINGS_WHY_BYTES] = "";
	uint64_t value = 0;

	assert_int_equal(settings_parse(id, text, &value, why), 0);
	assert_string_equal(why, "");
	return value;
}

/* Parses text, expects err, and that why names every word of expect. */
static void test_parse_bad(enum setting_id id, const char *text, int err, const char *expect)
{
	char why[SETTINGS_WHY_BYTES] = "";
	uint64_t value = 12345;

	assert_int_equal(settings_parse(id, text, &value, why), err);
	assert_int_equal(value, 12345);
	if (!strstr(why, expect))
		fail_msg("'%s': why \"%s\" lacks \"%s\"", text, why, expect);
}

static void test_parse_units(void **state)
{
	(void)state;
	assert_int_equal(test_parse_ok(SETTING_ITEM_MAX_BYTES, "1000"), 1000);
	assert_int_equal(test_parse_ok(SETTING_ITEM_MAX_BYTES, "1000B"), 1000);
	assert_int_equal(test_parse_ok(SETTING_ITEM_MAX_BYTES, "4KiB"), 4096);
	assert_int_equal(test_parse_ok(SETTING_ITEM_MAX_BYTES, "2 MiB"), 2 << 20);
	assert_int_equal(test_parse_ok(SETTING_ITEM_MAX_BYTES, "1M"), 1 << 20);
	assert_int_equal(test_parse_ok(SETTING_SPLIT_BYTES, "64MiB"), 64ull << 20);
	assert_int_equal(test_parse_ok(SETTING_SPLIT_BYTES, "10GiB"), 10ull << 30);
	assert_int_equal(test_parse_ok(SETTING_SPLIT_BYTES, "1TiB"), 1ull << 40);
	assert_int_equal(test_parse_ok(SETTING_SPLIT_RATE, "2500"), 2500);
	assert_int_equal(test_parse_ok(SETTING_SPLIT_RATE, "2500/s"), 2500);
	assert_int_equal(test_parse_ok(SETTING_SPLIT_WINDOW_S, "45"), 45);
	assert_int_equal(test_parse_ok(SETTING_SPLIT_WINDOW_S, "2m"), 120);
	assert_int_equal(test_parse_ok(SETTING_SPLIT_WINDOW_S, "1h"), 3600);
	assert_int_equal(test_parse_ok(SETTING_HEARTBEAT_TIMEOUT_MS, "750"), 750);
	assert_int_equal(test_parse_ok(SETTING_HEARTBEAT_TIMEOUT_MS, "750ms"), 750);
	assert_int_equal(test_parse_ok(SETTING_HEARTBEAT_TIMEOUT_MS, "3s"), 3000);
}

static void test_parse_errors(void **state)
{
	(void)state;
	test_parse_bad(SETTING_ITEM_MAX_BYTES, "", -EINVAL, "whole number of bytes");
	test_parse_bad(SETTING_ITEM_MAX_BYTES, "lots", -EINVAL, "not 'lots'");
	test_parse_bad(SETTING_ITEM_MAX_BYTES, "-5", -EINVAL, "whole number");
	test_parse_bad(SETTING_ITEM_MAX_BYTES, "+5", -EINVAL, "whole number");
	test_parse_bad(SETTING_ITEM_MAX_BYTES, "1.5MiB", -EINVAL, "unknown unit '.5MiB'");
	test_parse_bad(SETTING_ITEM_MAX_BYTES, "10 parsecs", -EINVAL, "KiB, MiB");
	/* Decimal megabytes are refused rather than guessed. */
	test_parse_bad(SETTING_ITEM_MAX_BYTES, "1MB", -EINVAL, "unknown unit 'MB'");
	test_parse_bad(SETTING_ITEM_MAX_BYTES, "0", -ERANGE, "out of range: 1 to 33554432");
	test_parse_bad(SETTING_ITEM_MAX_BYTES, "33554433", -ERANGE, "out of range");
	test_parse_bad(SETTING_ITEM_MAX_BYTES, "64MiB", -ERANGE, "out of range");
	test_parse_bad(SETTING_ITEM_MAX_BYTES, "99999999999999999999", -ERANGE, "too large");
	/* Overflow of number * unit. */
	test_parse_bad(SETTING_SPLIT_BYTES, "18446744073709551615TiB", -ERANGE, "out of range");
	test_parse_bad(SETTING_SPLIT_BYTES, "1KiB", -ERANGE, "65536 to");
	test_parse_bad(SETTING_SPLIT_RATE, "0", -ERANGE, "ops/s");
	test_parse_bad(SETTING_SPLIT_RATE, "10s", -EINVAL, "unit of split.rate is ops/s");
	test_parse_bad(SETTING_SPLIT_WINDOW_S, "500ms", -EINVAL, "s, m or h");
	test_parse_bad(SETTING_SPLIT_WINDOW_S, "2d", -EINVAL, "unknown unit 'd'");
	test_parse_bad(SETTING_SPLIT_WINDOW_S, "25h", -ERANGE, "1 to 86400 s");
	test_parse_bad(SETTING_HEARTBEAT_TIMEOUT_MS, "99", -ERANGE, "100 to");
	test_parse_bad(SETTING_HEARTBEAT_TIMEOUT_MS, "1h", -EINVAL, "ms, s or m");
}

static void test_unknown_key(void **state)
{
	struct test_state *test = *state;
	char why[SETTINGS_WHY_BYTES] = "";
	Quorum__SettingsResponse *described;
	struct arena *arena = arena_new();
	enum setting_id id;

	assert_non_null(arena);
	assert_int_equal(settings_find("item.max_bytes", &id, why), 0);
	assert_int_equal(id, SETTING_ITEM_MAX_BYTES);
	assert_int_equal(settings_find("split.size", &id, why), -ENOENT);
	assert_non_null(strstr(why, "no setting 'split.size'"));
	for (int i = 0; i < SETTING_COUNT; i++)
		assert_non_null(strstr(why, settings_key((enum setting_id)i)));
	/* A key with a control character is not echoed back. */
	assert_int_equal(settings_find("bad\nkey", &id, why), -ENOENT);
	assert_null(strchr(why, '\n'));
	assert_non_null(strstr(why, "split.window_s"));
	why[0] = '\0';
	assert_int_equal(settings_set(test->settings, "nope", "1", NULL, why), -ENOENT);
	assert_non_null(strstr(why, "heartbeat.timeout_ms"));
	assert_int_equal(settings_describe(test->settings, "nope", arena, &described, why),
			 -ENOENT);
	arena_free(arena);
}

static const Quorum__Setting *test_find(const Quorum__SettingsResponse *response, const char *key)
{
	for (size_t i = 0; i < response->n_settings; i++)
		if (strcmp(response->settings[i]->key, key) == 0)
			return response->settings[i];
	return NULL;
}

static void test_set_and_describe(void **state)
{
	struct test_state *test = *state;
	char why[SETTINGS_WHY_BYTES] = "";
	Quorum__SettingsResponse *described;
	const Quorum__Setting *setting;
	struct arena *arena = arena_new();
	enum setting_id id = SETTING_COUNT;

	assert_non_null(arena);
	assert_int_equal(settings_get(test->settings, SETTING_SPLIT_BYTES),
			 SETTINGS_SPLIT_BYTES_DEFAULT);
	assert_int_equal(settings_set(test->settings, "split.bytes", "128KiB", &id, why), 0);
	assert_int_equal(id, SETTING_SPLIT_BYTES);
	assert_int_equal(settings_get(test->settings, SETTING_SPLIT_BYTES), 128 * 1024);
	/* A bad value changes nothing. */
	assert_int_equal(settings_set(test->settings, "split.bytes", "1", NULL, why), -ERANGE);
	assert_int_equal(settings_get(test->settings, SETTING_SPLIT_BYTES), 128 * 1024);

	assert_int_equal(settings_describe(test->settings, NULL, arena, &described, why), 0);
	assert_int_equal(described->n_settings, SETTING_COUNT);
	setting = test_find(described, "split.bytes");
	assert_non_null(setting);
	assert_int_equal(setting->value, 128 * 1024);
	assert_int_equal(setting->default_value, SETTINGS_SPLIT_BYTES_DEFAULT);
	assert_true(setting->is_set);
	assert_string_equal(setting->unit, "bytes");
	assert_non_null(setting->description);
	setting = test_find(described, "split.rate");
	assert_non_null(setting);
	assert_false(setting->is_set);
	assert_string_equal(setting->unit, "ops/s");

	assert_int_equal(settings_describe(test->settings, "item.max_bytes", arena, &described,
					   why), 0);
	assert_int_equal(described->n_settings, 1);
	assert_string_equal(described->settings[0]->key, "item.max_bytes");
	assert_int_equal(described->settings[0]->value, test->defaults[SETTING_ITEM_MAX_BYTES]);

	assert_int_equal(settings_set(test->settings, "split.bytes", "default", NULL, why), 0);
	assert_int_equal(settings_get(test->settings, SETTING_SPLIT_BYTES),
			 SETTINGS_SPLIT_BYTES_DEFAULT);
	assert_int_equal(settings_describe(test->settings, "split.bytes", arena, &described, why),
			 0);
	assert_false(described->settings[0]->is_set);
	arena_free(arena);
}

static void test_persistence(void **state)
{
	struct test_state *test = *state;
	char why[SETTINGS_WHY_BYTES] = "";

	assert_int_equal(settings_set(test->settings, "item.max_bytes", "1000", NULL, why), 0);
	assert_int_equal(settings_set(test->settings, "split.rate", "42", NULL, why), 0);
	assert_int_equal(settings_set(test->settings, "heartbeat.timeout_ms", "2s", NULL, why), 0);
	assert_int_equal(settings_set(test->settings, "split.window_s", "5", NULL, why), 0);
	assert_int_equal(settings_set(test->settings, "split.window_s", "default", NULL, why), 0);

	/* Other flags this time: a stored value wins over them, the rest follow them. */
	test_close(test);
	test->defaults[SETTING_ITEM_MAX_BYTES] = 4096;
	test->defaults[SETTING_HEARTBEAT_TIMEOUT_MS] = 700;
	test->defaults[SETTING_SPLIT_WINDOW_S] = 7;
	assert_int_equal(test_open(test), 0);
	assert_int_equal(settings_get(test->settings, SETTING_ITEM_MAX_BYTES), 1000);
	assert_int_equal(settings_get(test->settings, SETTING_SPLIT_RATE), 42);
	assert_int_equal(settings_get(test->settings, SETTING_HEARTBEAT_TIMEOUT_MS), 2000);
	assert_int_equal(settings_get(test->settings, SETTING_SPLIT_WINDOW_S), 7);
	assert_int_equal(settings_get(test->settings, SETTING_SPLIT_BYTES),
			 SETTINGS_SPLIT_BYTES_DEFAULT);

	/* Back to the default: the record is gone, the new default shows. */
	assert_int_equal(settings_set(test->settings, "item.max_bytes", "default", NULL, why), 0);
	assert_int_equal(settings_get(test->settings, SETTING_ITEM_MAX_BYTES), 4096);
	test_close(test);
	assert_int_equal(test_open(test), 0);
	assert_int_equal(settings_get(test->settings, SETTING_ITEM_MAX_BYTES), 4096);
	assert_int_equal(settings_get(test->settings, SETTING_SPLIT_RATE), 42);
}

/* A record that does not decode, one out of range and one of a key a newer
 * meta knows: the defaults hold, and the catalog opens all the same. */
static void test_damaged_records(void **state)
{
	struct test_state *test = *state;
	Quorum__SettingRecord record = QUORUM__SETTING_RECORD__INIT;
	uint8_t packed[64];
	char *error = NULL;
	leveldb_t *db;
	leveldb_writeoptions_t *options = leveldb_writeoptions_create();
	size_t packed_bytes;

	assert_non_null(options);
	db = catalog_leveldb(test->catalog);
	leveldb_put(db, options, "s/split.rate", 12, "\xff\xff\xff", 3, &error);
	assert_null(error);
	record.format = SETTINGS_RECORD_FORMAT;
	record.key = "item.max_bytes";
	record.value = 0;	/* below the range */
	packed_bytes = quorum__setting_record__pack(&record, packed);
	leveldb_put(db, options, "s/item.max_bytes", 16, (const char *)packed, packed_bytes,
		    &error);
	assert_null(error);
	record.key = "future.knob";
	record.value = 7;
	packed_bytes = quorum__setting_record__pack(&record, packed);
	leveldb_put(db, options, "s/future.knob", 13, (const char *)packed, packed_bytes, &error);
	assert_null(error);
	leveldb_writeoptions_destroy(options);

	test_close(test);
	assert_int_equal(test_open(test), 0);
	assert_int_equal(settings_get(test->settings, SETTING_SPLIT_RATE),
			 SETTINGS_SPLIT_RATE_DEFAULT);
	assert_int_equal(settings_get(test->settings, SETTING_ITEM_MAX_BYTES),
			 test->defaults[SETTING_ITEM_MAX_BYTES]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_units),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test_setup_teardown(test_unknown_key, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_set_and_describe, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_persistence, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_damaged_records, test_setup, test_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
