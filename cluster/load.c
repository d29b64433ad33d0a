/* load.c: per-group request counters and hot-key summaries. See load.h.
 *
 * The groups are an array of pointers sorted by (table, hash_first), so a
 * count finds its group by binary search; a group's memory stays put while
 * the array is rebuilt by load_track. */
#include "cluster/load.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct load_second {
	int64_t second;			/* now_ms / 1000 this slot counts; -1: unused */
	uint64_t reads, writes;
};

struct load_group {
	struct load_range range;
	int64_t tracked_ms;
	uint64_t reads_total, writes_total;
	struct load_second seconds[LOAD_WINDOW_S];
	/* Hot keys of the window that started at window_ms, and of the one before. */
	struct load_summary current, previous;
	int64_t window_ms;
	bool has_census;
	uint64_t item_count, size_bytes;
	int64_t census_ms;
};

struct load {
	pthread_mutex_t lock;
	struct load_group **groups;	/* sorted by (table_id, hash_first) */
	size_t group_count;
};

/* ---------------------------------------------------------------- summary */

void load_summary_clear(struct load_summary *summary)
{
	summary->used = 0;
	summary->total = 0;
}

static void load_hot_key_set(struct load_hot_key *slot, uint64_t hash, const void *key,
			     size_t key_bytes)
{
	slot->hash = hash;
	slot->key_bytes = key_bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)key_bytes;
	slot->sample_bytes = key_bytes < LOAD_KEY_SAMPLE_BYTES ? (uint32_t)key_bytes :
			     LOAD_KEY_SAMPLE_BYTES;
	if (slot->sample_bytes)
		memcpy(slot->sample, key, slot->sample_bytes);
}

void load_summary_add(struct load_summary *summary, uint64_t hash, const void *key,
		      size_t key_bytes, uint64_t weight)
{
	struct load_hot_key *least = NULL;

	summary->total += weight;
	for (size_t i = 0; i < summary->used; i++) {
		struct load_hot_key *slot = &summary->slots[i];

		if (slot->hash == hash) {
			slot->count += weight;
			return;
		}
		if (!least || slot->count < least->count)
			least = slot;
	}
	if (summary->used < LOAD_SUMMARY_SLOTS) {
		struct load_hot_key *slot = &summary->slots[summary->used++];

		load_hot_key_set(slot, hash, key, key_bytes);
		slot->count = weight;
		slot->error = 0;
		return;
	}
	/* Space saving: the new key takes the least counted slot and inherits
	 * its count as the bound of its error. */
	load_hot_key_set(least, hash, key, key_bytes);
	least->error = least->count;
	least->count += weight;
}

/* The least count of a full summary: what a key it lacks may have had. */
static uint64_t load_summary_floor(const struct load_summary *summary)
{
	uint64_t least = UINT64_MAX;

	if (!summary || summary->used < LOAD_SUMMARY_SLOTS)
		return 0;
	for (size_t i = 0; i < summary->used; i++)
		if (summary->slots[i].count < least)
			least = summary->slots[i].count;
	return least;
}

static const struct load_hot_key *load_summary_find(const struct load_summary *summary,
						    uint64_t hash)
{
	for (size_t i = 0; summary && i < summary->used; i++)
		if (summary->slots[i].hash == hash)
			return &summary->slots[i];
	return NULL;
}

static int load_hot_key_compare(const void *a, const void *b)
{
	const struct load_hot_key *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return x->hash < y->hash ? -1 : x->hash > y->hash;
}

size_t load_summary_top(const struct load_summary *a, const struct load_summary *b,
			struct load_hot_key *out, size_t max)
{
	struct load_hot_key merged[2 * LOAD_SUMMARY_SLOTS];
	const struct load_summary *both[2] = { a, b };
	uint64_t floors[2] = { load_summary_floor(a), load_summary_floor(b) };
	size_t n = 0;

	for (int s = 0; s < 2; s++) {
		for (size_t i = 0; both[s] && i < both[s]->used; i++) {
			const struct load_hot_key *slot = &both[s]->slots[i];
			const struct load_hot_key *other;

			/* A key in both is merged when its first summary is seen. */
			if (s == 1 && load_summary_find(a, slot->hash))
				continue;
			other = load_summary_find(both[1 - s], slot->hash);
			merged[n] = *slot;
			if (other) {
				merged[n].count += other->count;
				merged[n].error += other->error;
			} else {
				merged[n].count += floors[1 - s];
				merged[n].error += floors[1 - s];
			}
			n++;
		}
	}
	qsort(merged, n, sizeof(merged[0]), load_hot_key_compare);
	if (n > max)
		n = max;
	memcpy(out, merged, n * sizeof(merged[0]));
	return n;
}

/* ----------------------------------------------------------------- groups */

int load_new(struct load **out)
{
	struct load *load = calloc(1, sizeof(*load));

	*out = NULL;
	if (!load)
		return -ENOMEM;
	if (pthread_mutex_init(&load->lock, NULL) != 0) {
		free(load);
		return -ENOMEM;
	}
	*out = load;
	return 0;
}

void load_free(struct load *load)
{
	if (!load)
		return;
	for (size_t i = 0; i < load->group_count; i++)
		free(load->groups[i]);
	free(load->groups);
	pthread_mutex_destroy(&load->lock);
	free(load);
}

static int load_group_compare(const void *a, const void *b)
{
	const struct load_group *x = *(struct load_group *const *)a;
	const struct load_group *y = *(struct load_group *const *)b;

	if (x->range.table_id != y->range.table_id)
		return x->range.table_id < y->range.table_id ? -1 : 1;
	if (x->range.hash_first != y->range.hash_first)
		return x->range.hash_first < y->range.hash_first ? -1 : 1;
	return x->range.partition_id < y->range.partition_id ? -1 :
	       x->range.partition_id > y->range.partition_id;
}

static struct load_group *load_group_new(const struct load_range *range, int64_t now_ms)
{
	struct load_group *group = calloc(1, sizeof(*group));

	if (!group)
		return NULL;
	group->range = *range;
	group->tracked_ms = now_ms;
	group->window_ms = now_ms;
	for (size_t i = 0; i < LOAD_WINDOW_S; i++)
		group->seconds[i].second = -1;
	return group;
}

/* The tracked group of (table, partition), or NULL. Lock held. */
static struct load_group *load_find_partition(const struct load *load, uint64_t table_id,
					      uint64_t partition_id)
{
	for (size_t i = 0; i < load->group_count; i++)
		if (load->groups[i]->range.table_id == table_id &&
		    load->groups[i]->range.partition_id == partition_id)
			return load->groups[i];
	return NULL;
}

int load_track(struct load *load, const struct load_range *ranges, size_t count,
	       int64_t now_ms)
{
	struct load_group **groups = NULL, **old;
	size_t old_count;
	bool *kept = NULL;
	int err = 0;

	if (count > LOAD_GROUPS_MAX)
		return -E2BIG;
	pthread_mutex_lock(&load->lock);
	if (count) {
		groups = calloc(count, sizeof(*groups));
		kept = calloc(load->group_count ? load->group_count : 1, sizeof(*kept));
		if (!groups || !kept) {
			err = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < count; i++) {
		struct load_group *group = NULL;

		for (size_t j = 0; j < load->group_count && !group; j++) {
			struct load_group *candidate = load->groups[j];

			if (!kept[j] && candidate->range.table_id == ranges[i].table_id &&
			    candidate->range.partition_id == ranges[i].partition_id) {
				kept[j] = true;
				group = candidate;
			}
		}
		if (!group) {
			group = load_group_new(&ranges[i], now_ms);
			if (!group) {
				/* Undo: free only the groups made here. */
				for (size_t k = 0; k < i; k++) {
					bool existing = false;

					for (size_t j = 0; j < load->group_count; j++)
						existing = existing || load->groups[j] == groups[k];
					if (!existing)
						free(groups[k]);
				}
				err = -ENOMEM;
				goto out;
			}
		}
		groups[i] = group;
	}
	/* Past the point of failure: ranges follow the list (a split narrowed one). A
	 * narrowed range's census counted items it no longer holds: unknown until the next
	 * pass, or meta would split it again on its old size. */
	for (size_t i = 0; i < count; i++) {
		if (groups[i]->range.hash_first != ranges[i].hash_first ||
		    groups[i]->range.hash_last != ranges[i].hash_last)
			groups[i]->has_census = false;
		groups[i]->range = ranges[i];
	}
	if (count)
		qsort(groups, count, sizeof(*groups), load_group_compare);
	old = load->groups;
	old_count = load->group_count;
	for (size_t j = 0; j < old_count; j++)
		if (!kept || !kept[j])
			free(old[j]);
	free(old);
	load->groups = groups;
	load->group_count = count;
	groups = NULL;
out:
	pthread_mutex_unlock(&load->lock);
	free(groups);
	free(kept);
	return err;
}

int load_groups(struct load *load, struct load_range **ranges, size_t *count)
{
	struct load_range *out = NULL;
	int err = 0;

	pthread_mutex_lock(&load->lock);
	if (load->group_count) {
		out = malloc(load->group_count * sizeof(*out));
		if (!out)
			err = -ENOMEM;
		for (size_t i = 0; out && i < load->group_count; i++)
			out[i] = load->groups[i]->range;
	}
	*ranges = out;
	*count = out ? load->group_count : 0;
	pthread_mutex_unlock(&load->lock);
	return err;
}

/* The group of table_id whose range holds hash, or NULL. Lock held. */
static struct load_group *load_find_hash(const struct load *load, uint64_t table_id,
					 uint64_t hash)
{
	size_t low = 0, high = load->group_count;

	/* The last group that starts at or before (table_id, hash). */
	while (low < high) {
		size_t mid = low + (high - low) / 2;
		const struct load_range *r = &load->groups[mid]->range;

		if (r->table_id < table_id || (r->table_id == table_id && r->hash_first <= hash))
			low = mid + 1;
		else
			high = mid;
	}
	/* Ranges of one table may overlap for a moment (a split meta has not
	 * recorded everywhere): look back for one that holds hash. */
	while (low > 0) {
		const struct load_range *r = &load->groups[low - 1]->range;

		if (r->table_id != table_id)
			break;
		if (hash >= r->hash_first && hash <= r->hash_last)
			return load->groups[low - 1];
		low--;
	}
	return NULL;
}

/* Moves a group's hot-key windows on to now_ms. */
static void load_group_roll(struct load_group *group, int64_t now_ms)
{
	const int64_t window_ms = LOAD_WINDOW_S * 1000;
	int64_t elapsed_ms = now_ms - group->window_ms;

	if (elapsed_ms < window_ms)
		return;
	if (elapsed_ms < 2 * window_ms)
		group->previous = group->current;
	else
		load_summary_clear(&group->previous);
	load_summary_clear(&group->current);
	group->window_ms = now_ms - elapsed_ms % window_ms;
}

void load_count(struct load *load, uint64_t table_id, uint64_t hash, enum load_op op,
		const void *key, size_t key_bytes, int64_t now_ms)
{
	int64_t second = now_ms / 1000;
	struct load_second *slot;
	struct load_group *group;

	pthread_mutex_lock(&load->lock);
	group = load_find_hash(load, table_id, hash);
	if (!group) {
		pthread_mutex_unlock(&load->lock);
		return;
	}
	slot = &group->seconds[second % LOAD_WINDOW_S];
	if (slot->second != second) {
		slot->second = second;
		slot->reads = 0;
		slot->writes = 0;
	}
	if (op == LOAD_WRITE) {
		slot->writes++;
		group->writes_total++;
	} else {
		slot->reads++;
		group->reads_total++;
	}
	if (key) {
		load_group_roll(group, now_ms);
		load_summary_add(&group->current, hash, key, key_bytes, 1);
	}
	pthread_mutex_unlock(&load->lock);
}

int load_set_census(struct load *load, uint64_t table_id, uint64_t partition_id,
		    uint64_t item_count, uint64_t size_bytes, int64_t now_ms)
{
	struct load_group *group;

	pthread_mutex_lock(&load->lock);
	group = load_find_partition(load, table_id, partition_id);
	if (group) {
		group->has_census = true;
		group->item_count = item_count;
		group->size_bytes = size_bytes;
		group->census_ms = now_ms;
	}
	pthread_mutex_unlock(&load->lock);
	return group ? 0 : -ENOENT;
}

int load_figures(struct load *load, uint64_t table_id, uint64_t partition_id, int64_t now_ms,
		 struct load_figures *out)
{
	int64_t now_s = now_ms / 1000, covered_s;
	uint64_t reads = 0, writes = 0;
	struct load_group *group;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&load->lock);
	group = load_find_partition(load, table_id, partition_id);
	if (!group) {
		pthread_mutex_unlock(&load->lock);
		return -ENOENT;
	}
	for (size_t i = 0; i < LOAD_WINDOW_S; i++) {
		const struct load_second *slot = &group->seconds[i];

		if (slot->second >= 0 && slot->second > now_s - LOAD_WINDOW_S &&
		    slot->second <= now_s) {
			reads += slot->reads;
			writes += slot->writes;
		}
	}
	/* A group tracked a moment ago has not had the whole window. */
	covered_s = now_s - group->tracked_ms / 1000 + 1;
	if (covered_s > LOAD_WINDOW_S)
		covered_s = LOAD_WINDOW_S;
	if (covered_s < 1)
		covered_s = 1;
	out->read_ops_per_s = (double)reads / (double)covered_s;
	out->write_ops_per_s = (double)writes / (double)covered_s;
	out->reads_total = group->reads_total;
	out->writes_total = group->writes_total;
	out->has_census = group->has_census;
	out->item_count = group->item_count;
	out->size_bytes = group->size_bytes;
	out->census_ms = group->census_ms;
	load_group_roll(group, now_ms);
	out->hot_count = load_summary_top(&group->current, &group->previous, out->hot,
					  LOAD_HOT_KEYS_REPORTED);
	pthread_mutex_unlock(&load->lock);
	return 0;
}

int load_fill_report(struct load *load, Quorum__GroupReport *report, int64_t now_ms,
		     struct arena *arena)
{
	struct load_figures figures;
	Quorum__HotKey *hots;
	int err;

	err = load_figures(load, report->table_id, report->partition_id, now_ms, &figures);
	if (err < 0)
		return err;
	report->has_read_ops_per_s = true;
	report->read_ops_per_s = figures.read_ops_per_s;
	report->has_write_ops_per_s = true;
	report->write_ops_per_s = figures.write_ops_per_s;
	if (figures.has_census) {
		report->has_item_count = true;
		report->item_count = figures.item_count;
		report->has_size_bytes = true;
		report->size_bytes = figures.size_bytes;
	}
	if (figures.hot_count == 0)
		return 0;
	report->hot_keys = arena_alloc(arena, figures.hot_count * sizeof(*report->hot_keys));
	hots = arena_alloc(arena, figures.hot_count * sizeof(*hots));
	if (!report->hot_keys || !hots) {
		report->hot_keys = NULL;
		return -ENOMEM;
	}
	for (size_t i = 0; i < figures.hot_count; i++) {
		const struct load_hot_key *hot = &figures.hot[i];

		quorum__hot_key__init(&hots[i]);
		hots[i].key.data = arena_memdup(arena, hot->sample, hot->sample_bytes);
		if (!hots[i].key.data && hot->sample_bytes) {
			report->hot_keys = NULL;
			return -ENOMEM;
		}
		hots[i].key.len = hot->sample_bytes;
		hots[i].key_bytes = hot->key_bytes;
		hots[i].hash = hot->hash;
		hots[i].count = hot->count;
		hots[i].has_error = true;
		hots[i].error = hot->error;
		report->hot_keys[i] = &hots[i];
	}
	report->n_hot_keys = figures.hot_count;
	return 0;
}
