/* census.c: item count and size of the hosted partitions, a page at a
 * time. See census.h. */
#include "cluster/census.h"

#include "cluster/keys.h"
#include "cluster/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct census {
	struct store *store;
	/* The pass under way. */
	bool active;
	struct load_range range;
	uint8_t after[KEY_POSITION_MAX_BYTES];
	size_t after_bytes;
	uint64_t items, bytes;
	/* The group visited last: the next pass takes the one after it. */
	bool has_last;
	struct load_range last;
	/* The group whose failure was logged last, so a damaged item is
	 * logged once, not every heartbeat. */
	uint64_t failed_table_id, failed_partition_id;
};

int census_new(struct store *store, struct census **out)
{
	struct census *census = calloc(1, sizeof(*census));

	*out = NULL;
	if (!census)
		return -ENOMEM;
	census->store = store;
	*out = census;
	return 0;
}

void census_free(struct census *census)
{
	free(census);
}

/* Whether a comes before b in load's order (table, hash_first, partition). */
static bool census_before(const struct load_range *a, const struct load_range *b)
{
	if (a->table_id != b->table_id)
		return a->table_id < b->table_id;
	if (a->hash_first != b->hash_first)
		return a->hash_first < b->hash_first;
	return a->partition_id < b->partition_id;
}

static void census_start(struct census *census, const struct load_range *ranges, size_t count)
{
	size_t next = 0;

	/* The first group after the last one visited, wrapping around. */
	if (census->has_last) {
		while (next < count && !census_before(&census->last, &ranges[next]))
			next++;
		if (next == count)
			next = 0;
	}
	census->active = true;
	census->range = ranges[next];
	census->after_bytes = 0;
	census->items = 0;
	census->bytes = 0;
}

/* Whether the pass's group is still tracked with the same range. */
static bool census_still_tracked(const struct census *census, const struct load_range *ranges,
				 size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (ranges[i].table_id == census->range.table_id &&
		    ranges[i].partition_id == census->range.partition_id)
			return ranges[i].hash_first == census->range.hash_first &&
			       ranges[i].hash_last == census->range.hash_last;
	return false;
}

static void census_finish(struct census *census)
{
	census->active = false;
	census->has_last = true;
	census->last = census->range;
}

/* Scans one page of the pass; *scanned is how many items it held. */
static int census_page(struct census *census, struct load *load, size_t limit, int64_t now_ms,
		       size_t *scanned)
{
	Quorum__ScanRequest scan = QUORUM__SCAN_REQUEST__INIT;
	Quorum__ScanResponse *page;
	struct arena *arena = arena_new();
	int err;

	*scanned = 0;
	if (!arena)
		return -ENOMEM;
	scan.table_id = census->range.table_id;
	scan.hash_first = census->range.hash_first;
	scan.hash_last = census->range.hash_last;
	scan.limit = (uint32_t)limit;
	if (census->after_bytes) {
		scan.has_after = true;
		scan.after.data = census->after;
		scan.after.len = census->after_bytes;
	}
	err = store_scan(census->store, &scan, arena, &page);
	if (err == 0) {
		for (size_t i = 0; i < page->n_entries; i++) {
			const Quorum__ScanEntry *entry = page->entries[i];

			census->items++;
			census->bytes += entry->partition_key.len + entry->sort_key.len +
					 (entry->meta ? entry->meta->size : 0);
		}
		*scanned = page->n_entries;
		if (page->more && page->n_entries) {
			const ProtobufCBinaryData *position =
				&page->entries[page->n_entries - 1]->position;

			if (position->len > sizeof(census->after)) {
				err = -EIO;	/* the store never makes one this long */
			} else {
				memcpy(census->after, position->data, position->len);
				census->after_bytes = position->len;
			}
		} else {
			load_set_census(load, census->range.table_id, census->range.partition_id,
					census->items, census->bytes, now_ms);
			census_finish(census);
		}
	}
	arena_free(arena);
	return err;
}

int census_step(struct census *census, struct load *load, size_t items_max, int64_t now_ms)
{
	struct load_range *ranges;
	size_t count, visits = 0, left = items_max;
	int err, first_err = 0;

	err = load_groups(load, &ranges, &count);
	if (err < 0)
		return err;
	if (count == 0) {
		census->active = false;
		return 0;
	}
	if (census->active) {
		if (census_still_tracked(census, ranges, count))
			visits = 1;
		else
			census->active = false;	/* moved, split or gone: start over */
	}
	while (left > 0) {
		size_t scanned;

		if (!census->active) {
			if (visits == count)
				break;
			census_start(census, ranges, count);
			visits++;
		}
		err = census_page(census, load, left < STORE_SCAN_LIMIT_MAX ? left :
				  STORE_SCAN_LIMIT_MAX, now_ms, &scanned);
		if (err < 0) {
			if (census->failed_table_id != census->range.table_id ||
			    census->failed_partition_id != census->range.partition_id)
				log_warn("census of group %" PRIu64 "/%" PRIu64 " failed: %s; its "
					 "item count and size stay as they were",
					 census->range.table_id, census->range.partition_id,
					 strerror(-err));
			census->failed_table_id = census->range.table_id;
			census->failed_partition_id = census->range.partition_id;
			census_finish(census);
			first_err = first_err ? first_err : err;
			continue;
		}
		/* An empty page still costs a seek: count it as one item. */
		left -= scanned ? (scanned < left ? scanned : left) : 1;
	}
	free(ranges);
	return first_err;
}
