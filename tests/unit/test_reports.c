/* test_reports.c: deep copies of heartbeat GroupReports (meta/reports.h):
 * a copy keeps hot keys and split children after the request's memory is
 * gone, bounds what a peer sent, and copies into an arena alike. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cluster/keys.h"
#include "meta/reports.h"

#include <stdlib.h>
#include <string.h>

/* A report as a heartbeat decodes it: every part malloc'd. */
static Quorum__GroupReport *test_report(uint64_t partition_id, size_t hot_count,
					size_t key_bytes, size_t child_count)
{
	Quorum__GroupReport *report = calloc(1, sizeof(*report));

	assert_non_null(report);
	quorum__group_report__init(report);
	report->table_id = 7;
	report->partition_id = partition_id;
	report->role = 3;
	report->has_item_count = true;
	report->item_count = 1234;
	report->has_write_ops_per_s = true;
	report->write_ops_per_s = 12.5;
	report->hot_keys = calloc(hot_count ? hot_count : 1, sizeof(*report->hot_keys));
	assert_non_null(report->hot_keys);
	for (size_t i = 0; i < hot_count; i++) {
		Quorum__HotKey *hot = calloc(1, sizeof(*hot));

		assert_non_null(hot);
		quorum__hot_key__init(hot);
		hot->key.data = malloc(key_bytes);
		assert_non_null(hot->key.data);
		memset(hot->key.data, 'a' + (int)i, key_bytes);
		hot->key.len = key_bytes;
		hot->key_bytes = (uint32_t)key_bytes;
		hot->hash = 100 + i;
		hot->count = 50 - i;
		report->hot_keys[i] = hot;
	}
	report->n_hot_keys = hot_count;
	report->children = calloc(child_count ? child_count : 1, sizeof(*report->children));
	assert_non_null(report->children);
	for (size_t i = 0; i < child_count; i++) {
		Quorum__SplitChild *child = calloc(1, sizeof(*child));

		assert_non_null(child);
		quorum__split_child__init(child);
		child->partition_id = 1000 + i;
		child->hash_first = i;
		report->children[i] = child;
	}
	report->n_children = child_count;
	return report;
}

static void test_report_free(Quorum__GroupReport *report)
{
	for (size_t i = 0; i < report->n_hot_keys; i++) {
		/* Scribbled over first, so a copy that still pointed here would show it. */
		memset(report->hot_keys[i]->key.data, 'X', report->hot_keys[i]->key.len);
		free(report->hot_keys[i]->key.data);
		free(report->hot_keys[i]);
	}
	for (size_t i = 0; i < report->n_children; i++)
		free(report->children[i]);
	free(report->hot_keys);
	free(report->children);
	free(report);
}

static void test_check_copy(const Quorum__GroupReport *copy, uint64_t partition_id,
			    size_t hot_count, size_t key_bytes, size_t child_count)
{
	assert_int_equal(copy->table_id, 7);
	assert_int_equal(copy->partition_id, partition_id);
	assert_int_equal(copy->item_count, 1234);
	assert_true(copy->write_ops_per_s == 12.5);
	assert_int_equal(copy->n_hot_keys, hot_count);
	for (size_t i = 0; i < hot_count; i++) {
		assert_int_equal(copy->hot_keys[i]->key.len, key_bytes);
		for (size_t b = 0; b < key_bytes; b++)
			assert_int_equal(copy->hot_keys[i]->key.data[b], 'a' + (int)i);
		assert_int_equal(copy->hot_keys[i]->hash, 100 + i);
		assert_int_equal(copy->hot_keys[i]->count, 50 - i);
	}
	assert_int_equal(copy->n_children, child_count);
	for (size_t i = 0; i < child_count; i++)
		assert_int_equal(copy->children[i]->partition_id, 1000 + i);
}

static void test_copy_outlives_request(void **state)
{
	Quorum__GroupReport *reports[2];
	Quorum__GroupReport *copies;

	(void)state;
	reports[0] = test_report(1, 3, 10, 2);
	reports[1] = test_report(2, 0, 0, 0);
	assert_int_equal(reports_copy(reports, 2, &copies), 0);
	test_report_free(reports[0]);
	test_report_free(reports[1]);
	test_check_copy(&copies[0], 1, 3, 10, 2);
	test_check_copy(&copies[1], 2, 0, 0, 0);
	reports_free(copies, 2);

	assert_int_equal(reports_copy(NULL, 0, &copies), 0);
	assert_null(copies);
	reports_free(NULL, 0);
}

static void test_bounds(void **state)
{
	Quorum__GroupReport *report = test_report(3, REPORTS_HOT_KEYS_MAX + 5,
						  KEY_NAME_MAX_BYTES + 100, 0);
	Quorum__GroupReport *copies;

	(void)state;
	assert_int_equal(reports_copy(&report, 1, &copies), 0);
	test_check_copy(&copies[0], 3, REPORTS_HOT_KEYS_MAX, KEY_NAME_MAX_BYTES, 0);
	reports_free(copies, 1);
	test_report_free(report);
}

static void test_in_arena(void **state)
{
	Quorum__GroupReport *report = test_report(4, 2, 64, 3);
	struct arena *arena = arena_new();
	Quorum__GroupReport *copy;
	uint8_t packed[4096];
	Quorum__GroupReport *decoded;

	(void)state;
	assert_non_null(arena);
	copy = reports_in_arena(report, arena);
	assert_non_null(copy);
	test_report_free(report);
	test_check_copy(copy, 4, 2, 64, 3);
	/* It packs as a whole message. */
	assert_true(quorum__group_report__get_packed_size(copy) <= sizeof(packed));
	decoded = quorum__group_report__unpack(NULL, quorum__group_report__pack(copy, packed),
					       packed);
	assert_non_null(decoded);
	test_check_copy(decoded, 4, 2, 64, 3);
	quorum__group_report__free_unpacked(decoded, NULL);
	arena_free(arena);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy_outlives_request),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_in_arena),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
